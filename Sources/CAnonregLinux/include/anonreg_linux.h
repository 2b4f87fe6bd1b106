// Linux system calls Swift cannot call directly (prctl(2) is variadic; renameat2(2),
// setresuid(2) and friends are declared only under _GNU_SOURCE, which Swift's Glibc module does
// not define). This is the only C in anonreg besides the libsodium boundary (CSodium); it holds
// no logic.
#ifndef ANONREG_LINUX_H
#define ANONREG_LINUX_H

/// prctl(PR_SET_DUMPABLE, value): 0 forbids core dumps and ptrace by same-uid processes.
int anonreg_set_dumpable(int value);
/// prctl(PR_GET_DUMPABLE).
int anonreg_get_dumpable(void);
/// setresuid(uid, uid, uid): real, effective and saved uid at once.
int anonreg_setresuid(unsigned int uid);
/// setresgid(gid, gid, gid).
int anonreg_setresgid(unsigned int gid);
/// getresuid(2).
int anonreg_getresuid(unsigned int *real, unsigned int *effective, unsigned int *saved);
/// renameat2(a, b, RENAME_EXCHANGE): swaps two existing paths atomically (both stay present
/// at every moment; Linux 3.15; ext4, xfs, btrfs, tmpfs). 0, or -1 with errno (EINVAL where the
/// file system cannot).
int anonreg_rename_exchange(const char *a, const char *b);

/// malloc_trim(0) (glibc's <malloc.h>, which Swift's Glibc module does not export): returns
/// freed heap to the system; 1 if memory was released.
int anonreg_malloc_trim(void);
/// Bytes of heap in use (mallinfo2().uordblks), for tests that check memory stays flat.
unsigned long anonreg_heap_in_use(void);

#endif
