#include "anonreg_linux.h"
#include <malloc.h>
#include <sys/prctl.h>

int anonreg_set_dumpable(int value) {
    return prctl(PR_SET_DUMPABLE, (unsigned long)value, 0UL, 0UL, 0UL);
}

int anonreg_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL);
}

int anonreg_malloc_trim(void) {
    return malloc_trim(0);
}

unsigned long anonreg_heap_in_use(void) {
    return (unsigned long)mallinfo2().uordblks;
}
