/* Header-only: the C contract between the launcher and libVMMCommandLine.so. */
#include "vmm_command_line.h"
