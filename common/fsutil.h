/*
 * fsutil.h - small file-system helpers shared by the tools and daemons.
 */
#ifndef NADER_FSUTIL_H
#define NADER_FSUTIL_H

#include <sys/types.h>

/*
 * Make the folder path and every missing parent (mkdir -p).  Folders
 * that are created get mode; existing ones are left as they are.
 * Returns 0, or -1 with errno set by the mkdir that failed (ENOTDIR when
 * a component is a file, ENAMETOOLONG when path does not fit PATH_MAX).
 */
int fs_mkdirs(const char *path, mode_t mode);

#endif
