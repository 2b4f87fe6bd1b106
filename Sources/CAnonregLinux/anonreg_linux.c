#define _GNU_SOURCE
#include "anonreg_linux.h"
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int anonreg_set_dumpable(int value) {
    return prctl(PR_SET_DUMPABLE, (unsigned long)value, 0UL, 0UL, 0UL);
}

int anonreg_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL);
}

int anonreg_setresuid(unsigned int uid) {
    return setresuid(uid, uid, uid);
}

int anonreg_setresgid(unsigned int gid) {
    return setresgid(gid, gid, gid);
}

int anonreg_getresuid(unsigned int *real, unsigned int *effective, unsigned int *saved) {
    uid_t r, e, s;
    int rc = getresuid(&r, &e, &s);
    if (rc == 0) {
        *real = r;
        *effective = e;
        *saved = s;
    }
    return rc;
}

int anonreg_rename_exchange(const char *a, const char *b) {
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

int anonreg_malloc_trim(void) {
    return malloc_trim(0);
}

unsigned long anonreg_heap_in_use(void) {
    return (unsigned long)mallinfo2().uordblks;
}
