// Linux system calls Swift cannot call directly (prctl(2) is variadic). This is the only C in
// anonreg besides the libsodium boundary (CSodium); it holds no logic.
#ifndef ANONREG_LINUX_H
#define ANONREG_LINUX_H

/// prctl(PR_SET_DUMPABLE, value): 0 forbids core dumps and ptrace by same-uid processes.
int anonreg_set_dumpable(int value);
/// prctl(PR_GET_DUMPABLE).
int anonreg_get_dumpable(void);

/// malloc_trim(0) (glibc's <malloc.h>, which Swift's Glibc module does not export): returns
/// freed heap to the system; 1 if memory was released.
int anonreg_malloc_trim(void);
/// Bytes of heap in use (mallinfo2().uordblks), for tests that check memory stays flat.
unsigned long anonreg_heap_in_use(void);

#endif
