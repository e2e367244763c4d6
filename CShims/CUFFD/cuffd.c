/* Header-only shim; this file gives SwiftPM a source to build. */
#include "cuffd.h"
