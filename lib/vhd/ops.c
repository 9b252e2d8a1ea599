// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include "vhd-private.h"
