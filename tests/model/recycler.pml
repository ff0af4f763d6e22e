/* SPDX-License-Identifier: MIT */
/*
 * Model of libbinned's global recycler: a Treiber stack of bundles whose head
 * is a (pointer, generation) pair updated by one double-width CAS. Threads pop
 * bundles (up to two at a time, so a thread can cause the A-B-A sequence by
 * itself) and push them back, ROUNDS times each.
 *
 * Safety properties checked over every interleaving:
 *   - a bundle is never handed out twice (owner[] must be free when popped);
 *   - no bundle is lost: when every thread is done, the stack holds each
 *     bundle exactly once.
 * Built with -DNOGEN the CAS compares the pointer only: spin must then find
 * the ABA counterexample (a thread's stale `next` re-installs a bundle that
 * another thread holds). tests/model/check.sh runs both.
 */
#ifndef THREADS
#define THREADS 2
#endif
#ifndef ROUNDS
#define ROUNDS 2
#endif
#define NB 3      /* bundles */
#define NIL 255

byte next[NB];
byte head_ptr;
byte head_gen;    /* wraps at 256; a stale CAS would need 256 changes in between */
byte owner[NB];   /* 0: in the stack (or being pushed), t+1: held by thread t */
byte done;

/* Pop one bundle into p (NIL when the stack is empty). */
inline pop(p, me) {
    byte hp, hg, nx;
    do
    :: atomic { hp = head_ptr; hg = head_gen }
       if
       :: hp == NIL -> p = NIL; break
       :: else
       fi;
       nx = next[hp];                      /* may be stale by the time of the CAS */
       atomic {
#ifdef NOGEN
           if
           :: head_ptr == hp ->
#else
           if
           :: head_ptr == hp && head_gen == hg ->
#endif
              head_ptr = nx; head_gen++; p = hp;
              assert(owner[p] == 0);      /* never handed out twice */
              owner[p] = me + 1;
              break
           :: else
           fi
       }
    od
}

/* Push bundle p back. */
inline push(p, me) {
    byte hp2, hg2;
    owner[p] = 0;
    do
    :: atomic { hp2 = head_ptr; hg2 = head_gen }
       next[p] = hp2;
       atomic {
#ifdef NOGEN
           if
           :: head_ptr == hp2 ->
#else
           if
           :: head_ptr == hp2 && head_gen == hg2 ->
#endif
              head_ptr = p; head_gen++; break
           :: else
           fi
       }
    od
}

proctype worker(byte me) {
    byte a, b, r;
    for (r : 1 .. ROUNDS) {
        pop(a, me);
        pop(b, me);
        /* the first bundle goes back while the second is still held: the
         * order that lets a stale `next` re-install a held bundle */
        if :: a != NIL -> push(a, me) :: else fi;
        if :: b != NIL -> push(b, me) :: else fi
    }
    atomic { done++ }
}

init {
    byte i, p, count;
    bool seen[NB];
    atomic {
        next[0] = 1; next[1] = 2; next[2] = NIL;
        head_ptr = 0; head_gen = 0;
        for (i : 0 .. THREADS - 1) { run worker(i) }
    }
    done == THREADS;
    /* every bundle is in the stack exactly once */
    p = head_ptr; count = 0;
    do
    :: p == NIL -> break
    :: else ->
       assert(count < NB);       /* a cycle or a duplicate would exceed NB */
       assert(!seen[p]);
       seen[p] = true; count++;
       p = next[p]
    od;
    assert(count == NB)
}
