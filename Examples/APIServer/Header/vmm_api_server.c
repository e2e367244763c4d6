/* Header-only: the C contract between the launcher and libVMMAPIServer.so. */
#include "vmm_api_server.h"
