#include "thread_local_slot.h"

__thread void *vmmkit_thread_plugin_state __attribute__((tls_model("initial-exec")));
