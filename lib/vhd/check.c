// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include "vhd-private.h"
int vhd_check(const char *path, const struct vhd_open_opts *opts, bool repair,
	      struct vhd_check_report *rep, struct vhd_error *err)
{
	return vhd_set_error(err, -ENOSYS, "%s: check: not yet", path);
}
int vhd_check_file(struct vhd_file *f, const char *name,
		   const struct vhd_open_opts *opts, bool repair,
		   struct vhd_check_report *rep, struct vhd_error *err)
{
	return vhd_set_error(err, -ENOSYS, "%s: check: not yet", name);
}
