/* SPDX-License-Identifier: MIT */
/*
 * Model of libarena's shared free-list protocol (libarena/src/alloc.c):
 *   - the list head is a tagged word {offset, generation}; an odd generation
 *     means a thread holds the list token (and list_lock) and may rewrite
 *     nodes;
 *   - allocation pops the head without the token: read the head, read the
 *     head node's next (a racy read of the free memory), one CAS of the whole
 *     word to {next, gen + 2}; a held token makes it give up (it takes the
 *     cursor instead: never waits);
 *   - a free that finds the token held (or the list long) pushes onto the
 *     pending stack with a CAS (push only; thread caches give their bins to
 *     the shared bins instead: arena_bins.pml);
 *   - a token holder (trylock: frees and allocations never wait for it)
 *     takes the whole pending stack, links it into the list, rewriting nodes,
 *     and releases with gen + 1.
 * Threads pop two blocks (so one thread can cause the A-B-A by itself: pop A,
 * pop B, free A, merge: A is the head again with a new next), free the
 * first, merge, free the second, ROUNDS times.
 *
 * Safety properties checked over every interleaving:
 *   - a block is never handed out twice (owner[] is 0 when popped);
 *   - nothing is lost or duplicated: when all threads are done, the list and
 *     the pending stack hold every block exactly once.
 * Built with -DNOGEN the head keeps only the busy bit (libarena's
 * CA_ARENA__DROP_TAG): spin must find the counterexample, a stale pop that
 * installs a block another thread holds. tests/model/check.sh runs both.
 */
#ifndef THREADS
#define THREADS 2
#endif
#ifndef ROUNDS
#define ROUNDS 1
#endif
#define NB 3      /* blocks */
#define NIL 255

byte next[NB];
byte head_off;
byte head_gen;    /* odd: token held; wraps at 256 */
byte pend_top;
byte pend_gen;
bit list_lock;
byte owner[NB];   /* 0: free (list or pending), t+1: allocated to thread t */
byte done;

/* Pop the head into p; NIL when the list is empty or the token is held
 * (the caller would take the cursor). */
inline pop(p, me) {
    byte hp, hg, nx;
    do
    :: atomic { hp = head_off; hg = head_gen }
       if
       :: hp == NIL || (hg & 1) -> p = NIL; break
       :: else
       fi;
       nx = next[hp];                      /* may be stale by the time of the CAS */
       atomic {
           if
           :: head_off == hp && head_gen == hg ->
#ifdef NOGEN
              head_off = nx;               /* the generation stays: only the busy bit */
#else
              head_off = nx; head_gen = hg + 2;
#endif
              p = hp;
              assert(owner[p] == 0);      /* never handed out twice */
              owner[p] = me + 1;
              break
           :: else
           fi
       }
    od
}

/* Free block p: push it on the pending stack. */
inline push(p) {
    byte pt, pg;
    owner[p] = 0;
    do
    :: atomic { pt = pend_top; pg = pend_gen }
       next[p] = pt;
       atomic {
           if
           :: pend_top == pt && pend_gen == pg -> pend_top = p; pend_gen++; break
           :: else
           fi
       }
    od
}

/* A token holder, if the token is free now: take the pending stack and link
 * it in front of the list (rewriting the last pending node's next). */
inline merge() {
    bit got;
    byte hg2, pt2, pg2, last, nh;
    atomic {
        if
        :: list_lock == 0 -> list_lock = 1; got = 1
        :: else -> got = 0
        fi
    }
    if
    :: got ->
       do                                  /* the odd generation: poppers keep off */
       :: atomic {
              hg2 = head_gen;
#ifdef NOGEN
              head_gen = 1;
#else
              head_gen = hg2 + 1;
#endif
              break
          }
       od;
       do
       :: atomic { pt2 = pend_top; pg2 = pend_gen }
          atomic {
              if
              :: pend_top == pt2 && pend_gen == pg2 -> pend_top = NIL; pend_gen++; break
              :: else
              fi
          }
       od;
       nh = head_off;
       if
       :: pt2 != NIL ->
          last = pt2;
          do
          :: next[last] != NIL -> last = next[last]
          :: else -> break
          od;
          next[last] = head_off;
          nh = pt2
       :: else
       fi;
       atomic {
           head_off = nh;
#ifdef NOGEN
           head_gen = 0;
#else
           head_gen = head_gen + 1;
#endif
           list_lock = 0
       }
    :: else
    fi
}

proctype worker(byte me) {
    byte a, b, r;
    for (r : 1 .. ROUNDS) {
        pop(a, me);
        pop(b, me);
        if :: a != NIL -> push(a) :: else fi;
        merge();
        if :: b != NIL -> push(b) :: else fi
    }
    atomic { done++ }
}

init {
    byte i, p, count;
    bool seen[NB];
    atomic {
        next[0] = 1; next[1] = 2; next[2] = NIL;
        head_off = 0; head_gen = 0;
        pend_top = NIL; pend_gen = 0;
        for (i : 0 .. THREADS - 1) { run worker(i) }
    }
    done == THREADS;
    assert(list_lock == 0 && (head_gen & 1) == 0);
    /* every block is in the list or the pending stack exactly once */
    count = 0;
    p = head_off;
    do
    :: p == NIL -> break
    :: else ->
       assert(count < NB && !seen[p] && owner[p] == 0);
       seen[p] = true; count++;
       p = next[p]
    od;
    p = pend_top;
    do
    :: p == NIL -> break
    :: else ->
       assert(count < NB && !seen[p] && owner[p] == 0);
       seen[p] = true; count++;
       p = next[p]
    od;
    assert(count == NB)
}
