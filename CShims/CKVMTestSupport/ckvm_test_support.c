#include "ckvm_test_support.h"
