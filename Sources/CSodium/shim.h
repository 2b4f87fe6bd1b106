// The only C boundary of anonreg for libsodium. Only the RegistryCrypto module imports it.
#ifndef ANONREG_CSODIUM_SHIM_H
#define ANONREG_CSODIUM_SHIM_H
#include <sodium.h>
#endif
