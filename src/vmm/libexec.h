/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef VSRV_LIBEXEC_H
#define VSRV_LIBEXEC_H

#include <stddef.h>

/*
 * Where vsrv's helper programs are (vsrv-client, vsrv-net): beside the
 * running vsrv in a build tree, else VSRV_LIBEXECDIR, where they are
 * installed.  path gets the first that is executable, or the installed
 * one's path if neither is (for the message exec's error makes).
 */
void vsrv_libexec_path(const char *name, char *path, size_t len);

#endif
