/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The legacy devices a PC has, each in its own file. */
#ifndef VSRV_DEVICES_H
#define VSRV_DEVICES_H

#include "../vmm/vm.h"

int testdev_init(struct vm *vm);
int port80_init(struct vm *vm);

#endif
