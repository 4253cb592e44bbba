/* The thread setting's private side (src/core/threads.c), for the places that hand work to
 * oneDNN. */
#ifndef FG_THREADS_IMPL_H
#define FG_THREADS_IMPL_H

/* Applies the library's OpenMP setting (dynamic teams off, the thread count within
 * OMP_THREAD_LIMIT) on the calling thread the first time it is called there, unless the thread
 * called fg_threads_set or runs inside a parallel region (of any team size); a thread the program started itself
 * otherwise carries the environment's setting, under which oneDNN 2.6 leaves products undone.
 * Costs a thread-local read after the first call. */
void fg_threads_ensure(void);

#endif
