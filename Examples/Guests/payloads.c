#include <string.h>
#include "guest_payloads.h"

#define PAYLOAD(name) extern const unsigned char guest_##name##_start[], guest_##name##_end[];
#include "payload_list.h"
#undef PAYLOAD

static const struct { const char *name; const unsigned char *start, *end; } table[] = {
#define PAYLOAD(name) { #name, guest_##name##_start, guest_##name##_end },
#include "payload_list.h"
#undef PAYLOAD
};

const unsigned char *guest_payload(const char *name, size_t *size) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(table[i].name, name) == 0) {
            *size = (size_t)(table[i].end - table[i].start);
            return table[i].start;
        }
    }
    *size = 0;
    return NULL;
}

const char *guest_payload_name(size_t index) {
    return index < sizeof table / sizeof table[0] ? table[index].name : NULL;
}
