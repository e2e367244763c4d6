/* Guest payloads assembled into the host binary (see *.S beside this header).
 * Each is position-independent machine code meant to be copied into guest RAM. */
#ifndef GUEST_PAYLOADS_H
#define GUEST_PAYLOADS_H
#include <stddef.h>

/* The bytes of payload `name`, or NULL if there is none; *size receives its length. */
const unsigned char *guest_payload(const char *name, size_t *size);

/* The name of payload `index` (0-based), or NULL past the end: for listings. */
const char *guest_payload_name(size_t index);

#endif
