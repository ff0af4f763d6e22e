/* SPDX-License-Identifier: MIT */
/*
 * Model of the remote-free queue (a block freed by a thread that does not own
 * its allocator is pushed onto the owner's lock-free list; the owner takes the
 * whole list with one atomic exchange and frees the blocks locally).
 * Producers push with a CAS on the head; the single consumer swaps the head
 * with NIL. Because the consumer never pops a single element, there is no ABA
 * window: a stale head only makes a producer's CAS fail and retry.
 *
 * Safety over every interleaving: every pushed block is taken exactly once
 * (none lost, none twice), and the list never links a block to itself.
 */
#ifndef PRODUCERS
#define PRODUCERS 2
#endif
#define PER 2                 /* blocks each producer frees remotely */
#define NB (PRODUCERS * PER)
#define NIL 255

byte head = NIL;
byte next[NB];
byte taken[NB];               /* times the consumer drained each block */
byte pushed;                  /* producers' pushes completed */

proctype producer(byte id) {
    byte k, blk, h;
    for (k : 0 .. PER - 1) {
        blk = id * PER + k;
        do
        :: h = head;
           next[blk] = h;
           atomic {
               if
               :: head == h -> head = blk; pushed++; break
               :: else
               fi
           }
        od
    }
}

proctype consumer() {
    byte list, n, got;
    got = 0;
    do
    :: atomic { pushed == NB && head == NIL } -> break   /* producers done, list empty */
    :: else ->
       atomic { list = head; head = NIL };     /* take the whole list */
       do
       :: list == NIL -> break
       :: else ->
          assert(next[list] != list);
          taken[list]++;
          assert(taken[list] == 1);            /* never twice */
          got++;
          list = next[list]
       od
    od
}

init {
    byte i;
    atomic {
        for (i : 0 .. PRODUCERS - 1) { run producer(i) }
        run consumer()
    }
    (_nr_pr == 1);                             /* all others finished */
    for (i : 0 .. NB - 1) { assert(taken[i] == 1) }   /* none lost */
}
