/* SPDX-License-Identifier: MIT */
/*
 * Model of libarena's shared bins (libarena/src/alloc.c, arena_internal.h):
 * one bin, a stack of chains whose top is a tagged word {offset, generation}.
 *   - push (a thread cache gives a bin back): write the chain's link to the
 *     current top into its first block (the pusher still owns it), then one
 *     CAS of the whole word to {chain, gen + 1};
 *   - pop (a thread whose own bin is empty): read the top, read the top
 *     chain's link to the next chain (a racy read of free memory: the chain
 *     may be popped and reused meanwhile), one CAS of the whole word to
 *     {next, gen + 1};
 *   - fold (the list token's holder): take the whole stack with a CAS to
 *     {empty, gen + 1}, then move every chain into the sorted list (here: mark
 *     its blocks as the list's).
 * A chain is one block here: the blocks behind a chain's first block are
 * written by its owner only and read after the CAS that hands the chain
 * over, so only the first block's link is shared.
 * Workers pop two chains (so one worker can cause the A-B-A by itself: pop
 * A, pop B, push A back with another link), push them back, ROUNDS times;
 * a folder takes the stack once, at any point (-DFOLD=0: none).
 *
 * Safety properties checked over every interleaving:
 *   - a chain is never handed out twice (owner[] is 0 when popped);
 *   - the fold takes only free chains, each once;
 *   - nothing is lost or duplicated: when all are done, the stack and the
 *     list hold every block exactly once.
 * Built with -DNOGEN the top keeps no generation (libarena's
 * CA_ARENA__DROP_TAG): spin must find the counterexample, a stale pop that
 * installs a chain another thread holds. tests/model/check.sh runs both.
 */
#ifndef THREADS
#define THREADS 2
#endif
#ifndef ROUNDS
#define ROUNDS 1
#endif
#ifndef FOLD
#define FOLD 1    /* 0: no folder (the larger configurations) */
#endif
#define NB 3      /* chains (one block each) */
#define NIL 255
#define LIST 200  /* owner mark: folded into the sorted list */

byte link[NB];    /* word 1 of a chain's first block: the next chain */
byte top_off;
byte top_gen;     /* wraps at 256 */
byte owner[NB];   /* 0: on the stack, t + 1: popped by thread t, LIST: folded */
byte done;

/* Pop the top chain into p; NIL when the stack is empty (the caller goes
 * on to the sorted list or fresh memory). */
inline pop(p, me) {
    byte hp, hg, nx;
    do
    :: atomic { hp = top_off; hg = top_gen }
       if
       :: hp == NIL -> p = NIL; break
       :: else
       fi;
       nx = link[hp];                      /* may be stale by the time of the CAS */
       atomic {
           if
           :: top_off == hp && top_gen == hg ->
#ifdef NOGEN
              top_off = nx;                /* the word keeps no generation */
#else
              top_off = nx; top_gen = hg + 1;
#endif
              p = hp;
              assert(owner[p] == 0);       /* never handed out twice */
              owner[p] = me + 1;
              break
           :: else
           fi
       }
    od;
    hp = 0; hg = 0; nx = 0                 /* dead: kept out of the state */
}

/* Give chain p back: link it to the top, then one CAS. */
inline push(p) {
    byte pt, pg;
    do
    :: atomic { pt = top_off; pg = top_gen }
       link[p] = pt;                       /* the pusher's own block */
       atomic {
           if
           :: top_off == pt && top_gen == pg ->
              top_off = p;
#ifndef NOGEN
              top_gen = pg + 1;
#endif
              owner[p] = 0;
              break
           :: else
           fi
       }
    od;
    pt = 0; pg = 0
}

proctype worker(byte me) {
    byte a, b, r;
    for (r : 1 .. ROUNDS) {
        pop(a, me);
        pop(b, me);
        if :: a != NIL -> push(a) :: else fi;
        if :: b != NIL -> push(b) :: else fi
    }
    atomic { done++ }
}

/* The token holder folds the bin: take the whole stack (CAS to empty), then
 * walk it, moving each chain to the list. */
proctype folder() {
    byte t, g, x;
    do
    :: atomic { t = top_off; g = top_gen }
       atomic {
           if
           :: top_off == t && top_gen == g ->
              top_off = NIL;
#ifndef NOGEN
              top_gen = g + 1;
#endif
              break
           :: else
           fi
       }
    od;
    x = t;
    do
    :: x == NIL -> break
    :: else ->
       assert(owner[x] == 0);             /* only free chains are folded */
       owner[x] = LIST;
       x = link[x]
    od;
    atomic { done++ }
}

init {
    byte i, p, count;
    bool seen[NB];
    atomic {
        link[0] = 1; link[1] = 2; link[2] = NIL;
        top_off = 0; top_gen = 0;
        for (i : 0 .. THREADS - 1) { run worker(i) }
        if
        :: FOLD -> run folder()
        :: else
        fi
    }
    done == THREADS + FOLD;
    /* every chain is on the stack or in the list, exactly once */
    count = 0;
    p = top_off;
    do
    :: p == NIL -> break
    :: else ->
       assert(count < NB && !seen[p] && owner[p] == 0);
       seen[p] = true; count++;
       p = link[p]
    od;
    for (i : 0 .. NB - 1) {
        if
        :: owner[i] == LIST -> assert(!seen[i]); count++
        :: else
        fi
    }
    assert(count == NB)
}
