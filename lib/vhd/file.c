// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The default file under a VHD: a POSIX file descriptor with an advisory
 * lock.  flock() locks belong to the open file description, so two opens in
 * one process conflict just as two processes do, which is what a disk needs:
 * one writer, or any number of readers (parents of running chains).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vhd-private.h"

struct posix_file {
	struct vhd_file base;
	int fd;
};

static int pf_fd(struct vhd_file *f)
{
	return ((struct posix_file *)f)->fd;
}

static ssize_t pf_pread(struct vhd_file *f, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pread(pf_fd(f), buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t pf_pwrite(struct vhd_file *f, const void *buf, size_t len,
			 uint64_t off)
{
	ssize_t n;

	do
		n = pwrite(pf_fd(f), buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int pf_flush(struct vhd_file *f)
{
	return fdatasync(pf_fd(f)) < 0 ? -errno : 0;
}

static int pf_get_size(struct vhd_file *f, uint64_t *size)
{
	struct stat st;

	/* The fstat system call itself where there is one: glibc's fstat()
	 * is newfstatat(), which takes a path, and a sandboxed caller that
	 * opens a file handed to it (vhd_file_from_fd) may allow only the
	 * call on a descriptor. */
#ifdef SYS_fstat
	if (syscall(SYS_fstat, pf_fd(f), &st) < 0)
#else
	if (fstat(pf_fd(f), &st) < 0)
#endif
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int pf_truncate(struct vhd_file *f, uint64_t size)
{
	return ftruncate(pf_fd(f), (off_t)size) < 0 ? -errno : 0;
}

static int pf_punch_hole(struct vhd_file *f, uint64_t off, uint64_t len)
{
	if (fallocate(pf_fd(f), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

static void pf_close(struct vhd_file *f)
{
	close(pf_fd(f));
	free(f);
}

static const struct vhd_file_ops posix_ops = {
	.pread = pf_pread,
	.pwrite = pf_pwrite,
	.flush = pf_flush,
	.get_size = pf_get_size,
	.truncate = pf_truncate,
	.punch_hole = pf_punch_hole,
	.close = pf_close,
	.get_fd = pf_fd,
};

/* Names the process holding a lock on the file, from /proc/locks. */
static void lock_holder(int fd, char *out, size_t len)
{
	struct stat st;
	char line[256], want[64];
	FILE *fp;

	snprintf(out, len, "another process");
	if (fstat(fd, &st) < 0)
		return;
	snprintf(want, sizeof(want), "%02x:%02x:%lu", major(st.st_dev),
		 minor(st.st_dev), (unsigned long)st.st_ino);
	fp = fopen("/proc/locks", "re");
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		char type[16], adv[16], mode[16], dev[64];
		int pid;

		if (sscanf(line, "%*[^:]: %15s %15s %15s %d %63s", type, adv,
			   mode, &pid, dev) != 5 || strcmp(type, "FLOCK"))
			continue;
		if (strcmp(dev, want) || pid <= 0)
			continue;
		char path[64], comm[64] = "";
		FILE *c;

		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		c = fopen(path, "re");
		if (c) {
			if (fgets(comm, sizeof(comm), c))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(c);
		}
		snprintf(out, len, "pid %d (%s)", pid, comm[0] ? comm : "?");
		break;
	}
	fclose(fp);
}

static int wrap_fd(int fd, const char *path, bool writable, bool lock,
		   struct vhd_file **out, struct vhd_error *err)
{
	struct posix_file *pf;

	if (lock && flock(fd, (writable ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		int e = errno;
		char holder[128];

		if (e != EWOULDBLOCK) {
			close(fd);
			return vhd_set_error(err, -e, "%s: cannot lock: %s",
					     path, strerror(e));
		}
		lock_holder(fd, holder, sizeof(holder));
		close(fd);
		return vhd_set_error(err, -EBUSY, "%s: in use by %s (%s)", path,
				     holder, writable ? "needed for writing"
						      : "open for writing");
	}
	pf = calloc(1, sizeof(*pf));
	if (!pf) {
		close(fd);
		return vhd_set_error(err, -ENOMEM, "%s: out of memory", path);
	}
	pf->base.ops = &posix_ops;
	pf->fd = fd;
	*out = &pf->base;
	return 0;
}

int vhd_file_open_posix(const char *path, bool writable, bool lock,
			struct vhd_file **out, struct vhd_error *err)
{
	struct stat st;
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		return vhd_set_error(err, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		close(fd);
		return vhd_set_error(err, -EINVAL, "%s: not a regular file",
				     path);
	}
	return wrap_fd(fd, path, writable, lock, out, err);
}

int vhd_file_create_posix(const char *path, struct vhd_file **out,
			  struct vhd_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0) {
		int e = errno;

		return vhd_set_error(err, -e, "%s: %s", path,
				     e == EEXIST ? "already exists" : strerror(e));
	}
	return wrap_fd(fd, path, true, true, out, err);
}

int vhd_file_from_fd(int fd, const char *name, bool writable, bool lock,
		     struct vhd_file **out, struct vhd_error *err)
{
	return wrap_fd(fd, name, writable, lock, out, err);
}
