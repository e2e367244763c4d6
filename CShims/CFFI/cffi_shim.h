/* libffi for Swift. The ffi_type_* descriptors are C globals; Swift cannot take a
 * stable address of an imported global, so this hands them out by code. */
#ifndef CFFI_SHIM_H
#define CFFI_SHIM_H
#include <ffi.h>

/* Codes used by VMMKit's hypercall signatures (TypedHypercall.swift). */
enum cffi_type_code {
    CFFI_VOID = 0, CFFI_I8, CFFI_I16, CFFI_I32, CFFI_I64,
    CFFI_U8, CFFI_U16, CFFI_U32, CFFI_U64, CFFI_PTR
};

static inline ffi_type *cffi_type(int code) {
    switch (code) {
    case CFFI_I8: return &ffi_type_sint8;
    case CFFI_I16: return &ffi_type_sint16;
    case CFFI_I32: return &ffi_type_sint32;
    case CFFI_I64: return &ffi_type_sint64;
    case CFFI_U8: return &ffi_type_uint8;
    case CFFI_U16: return &ffi_type_uint16;
    case CFFI_U32: return &ffi_type_uint32;
    case CFFI_U64: return &ffi_type_uint64;
    case CFFI_PTR: return &ffi_type_pointer;
    default: return &ffi_type_void;
    }
}

/* ffi_prep_cif with the platform's default ABI (a macro Swift cannot see). */
static inline int cffi_prep(ffi_cif *cif, unsigned nargs, ffi_type *ret, ffi_type **args) {
    return ffi_prep_cif(cif, FFI_DEFAULT_ABI, nargs, ret, args) == FFI_OK ? 0 : -1;
}
#endif
