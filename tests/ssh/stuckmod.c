/*
 * stuckmod: OpenSC's PKCS#11 module, with one call that never returns, for
 * the SSH tests: a module stuck (as OpenSC 0.23 once was, deadlocked in
 * C_Initialize while another session reset the card). Test equipment, not
 * part of cacreg.
 *
 *   cc -shared -fPIC stuckmod.c -ldl -o stuckmod.so
 *   STUCKMOD_MODULE  the real module (default OpenSC's)
 *   STUCKMOD_AT      initialize (default) or finalize: the call that never returns
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST list;

static CK_RV stuck(CK_VOID_PTR arg)
{
    (void)arg;
    for (;;)
        pause();
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    const char *path = getenv("STUCKMOD_MODULE");
    void *h = dlopen(path ? path : "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
                     RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList get = h ? (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList") : NULL;
    CK_FUNCTION_LIST_PTR real;

    if (!get || get(&real) != CKR_OK)
        return CKR_GENERAL_ERROR;
    list = *real;
    if (getenv("STUCKMOD_AT") && strcmp(getenv("STUCKMOD_AT"), "finalize") == 0)
        list.C_Finalize = stuck;
    else
        list.C_Initialize = stuck;
    *out = &list;
    return CKR_OK;
}
