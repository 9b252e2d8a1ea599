/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef VSRVD_VMCONF_H
#define VSRVD_VMCONF_H

#include "vsrvd.h"

/* Writes DIR/vm.json for the inventory's VM object `vm`, its paths
 * checked against the configuration's directories again. */
int vmconf_write(const struct vsrvd *d, const json_t *vm, const char *dir, struct vsrvd_err *e);

#endif
