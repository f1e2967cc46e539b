/* install.c - mdl_install: a new version arriving as files (OIP repository load with inline
 * files, uploads, retraining), written under <data_dir>/models/<name>/<version>/ and activated
 * (or, through mdl_install_as, made a canary or a standby).
 *
 * The file names come from a client, so they are confined: each path is exactly
 * "<version>/<file>" with a valid version and a plain file name (no "..", no absolute path, no
 * third component, no hidden file), every file belongs to the same version, and the files are
 * opened with O_EXCL | O_NOFOLLOW inside a directory we just created, whose parents are checked
 * not to be symbolic links. The version is written into a temporary directory and renamed into
 * place whole, so a scan never sees half a version.
 *
 * Invariants:
 *   1. Nothing is written outside <data_dir>/models/<name>/.
 *   2. On any failure (writing, manifest, sha256, load, validation) the version directory is
 *      removed again, the model directory too when this call created it, and the slot is
 *      forgotten: nothing written stays and the serving versions are untouched.
 *   3. An existing version (in either root) is never overwritten (MD_E_CONFLICT).
 */
#include "models/models_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INSTALL_MAX_FILES 32

static atomic_uint tmp_counter;

/* Split "<version>/<file>" into its two parts; -1 when the path is not exactly that. */
static int split_path(const char *path, char ver[MDL_VERSION_MAX], char file[64])
{
    const char *slash = path ? strchr(path, '/') : NULL;
    if (!slash || (size_t)(slash - path) >= MDL_VERSION_MAX || strchr(slash + 1, '/'))
        return -1;
    memcpy(ver, path, (size_t)(slash - path));
    ver[slash - path] = 0;
    if (strlen(slash + 1) >= 64)
        return -1;
    strcpy(file, slash + 1);
    if (!mdl__version_ok(ver) || !mdl__version_ok(file) || file[0] == '.')
        return -1;
    return 0;
}

static int check_files(const mdl_file *files, size_t n, char ver[MDL_VERSION_MAX], md_err *err)
{
    bool manifest = false;
    if (n == 0 || n > INSTALL_MAX_FILES)
        return md_fail(err, MD_E_INVALID_PARAM, "files", "between 1 and %d files are needed",
                       INSTALL_MAX_FILES);
    for (size_t i = 0; i < n; i++) {
        char v[MDL_VERSION_MAX], f[64];
        if (split_path(files[i].path, v, f) != 0 || (!files[i].data && files[i].len))
            return md_fail(err, MD_E_INVALID_PARAM, "files",
                           "file %zu: the path must be <version>/<file name>", i);
        if (i == 0)
            strcpy(ver, v);
        else if (strcmp(ver, v) != 0)
            return md_fail(err, MD_E_INVALID_PARAM, "files",
                           "all files must belong to one version");
        for (size_t j = 0; j < i; j++)
            if (strcmp(files[i].path, files[j].path) == 0)
                return md_fail(err, MD_E_INVALID_PARAM, "files", "file %zu repeats a path", i);
        manifest = manifest || strcmp(f, "modeld.json") == 0;
    }
    if (!manifest)
        return md_fail(err, MD_E_INVALID_PARAM, "files", "the version has no modeld.json");
    return MD_OK;
}

/* mkdir when missing; then it must be a real directory, not a link. *made tells which. */
static int ensure_dir(const char *path, bool *made, md_err *err)
{
    struct stat sb;
    *made = false;
    if (mkdir(path, 0755) == 0)
        *made = true;
    else if (errno != EEXIST)
        return md_fail(err, errno == ENOSPC ? MD_E_STORAGE_FULL : MD_E_IO, "files",
                       "cannot create the model directory");
    if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return md_fail(err, MD_E_IO, "files", "the model directory is not a plain directory");
    return MD_OK;
}

static int write_one(int dfd, const char *file, const void *data, size_t len, md_err *err)
{
    int fd = openat(dfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return md_fail(err, MD_E_IO, "files", "cannot create %s", file);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t k = write(fd, p, left);
        if (k <= 0) {
            int e = errno;
            close(fd);
            return md_fail(err, e == ENOSPC ? MD_E_STORAGE_FULL : MD_E_IO, "files",
                           "cannot write %s", file);
        }
        p += k;
        left -= (size_t)k;
    }
    int rc = fsync(fd) == 0 ? MD_OK : md_fail(err, MD_E_IO, "files", "cannot sync %s", file);
    close(fd);
    return rc;
}

/* Remove a directory we wrote (plain files only, one level). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

static int write_version(const char *mdir, const char *ver, const mdl_file *files, size_t n,
                         md_err *err)
{
    char tmp[PATH_MAX + 160], final[PATH_MAX + 160];
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%d-%u", mdir, ver, (int)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
    snprintf(final, sizeof final, "%s/%s", mdir, ver);
    if (mkdir(tmp, 0755) != 0)
        return md_fail(err, errno == ENOSPC ? MD_E_STORAGE_FULL : MD_E_IO, "files",
                       "cannot create the version directory");
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = dfd < 0 ? md_fail(err, MD_E_IO, "files", "cannot open the version directory") : MD_OK;
    for (size_t i = 0; rc == MD_OK && i < n; i++)
        rc = write_one(dfd, strchr(files[i].path, '/') + 1, files[i].data, files[i].len, err);
    if (dfd >= 0)
        close(dfd);
    if (rc == MD_OK && rename(tmp, final) != 0)
        rc = md_fail(err, errno == EEXIST || errno == ENOTEMPTY ? MD_E_CONFLICT : MD_E_IO,
                     "version", "the version directory cannot be put in place");
    if (rc != MD_OK)
        remove_dir(tmp);
    return rc;
}

static int install_locked(mdl_registry *r, const char *name, const char *ver, const mdl_file *files,
                          size_t n, mdl_install_mode mode, double pct, md_err *err)
{
    char root[PATH_MAX], mdir[PATH_MAX + 80], vdir[PATH_MAX + 120];
    bool made_root, made_model;
    if (mdl__slot_exists(r, name, ver))
        return md_fail(err, MD_E_CONFLICT, "version", "%s version %s exists", name, ver);
    snprintf(root, sizeof root, "%s/models", r->data_dir);
    snprintf(mdir, sizeof mdir, "%s/%s", root, name);
    snprintf(vdir, sizeof vdir, "%s/%s", mdir, ver);
    int rc = ensure_dir(root, &made_root, err);
    if (rc == MD_OK)
        rc = ensure_dir(mdir, &made_model, err);
    if (rc != MD_OK)
        return rc;
    rc = write_version(mdir, ver, files, n, err);
    if (rc == MD_OK)
        rc = mdl__install_place(r, name, ver, (int)mode, pct, err);
    if (rc != MD_OK) {
        if (rc != MD_E_CONFLICT)
            remove_dir(vdir);
        mdl__slot_remove(r, name, ver);
        if (made_model)
            rmdir(mdir);
        if (made_root)
            rmdir(root);
    }
    return rc;
}

int mdl_install(mdl_registry *r, const char *name, const mdl_file *files, size_t n, md_err *err)
{
    return mdl_install_as(r, name, files, n, MDL_INSTALL_ACTIVE, 0, err);
}

int mdl_install_as(mdl_registry *r, const char *name, const mdl_file *files, size_t n,
                   mdl_install_mode mode, double canary_percent, md_err *err)
{
    if (mode == MDL_INSTALL_CANARY && !(canary_percent > 0 && canary_percent <= 100))
        return md_fail(err, MD_E_INVALID_PARAM, "canary_percent", "must be in (0, 100]");
    char ver[MDL_VERSION_MAX] = "";
    if (!r->data_dir)
        return md_fail(err, MD_E_UNSUPPORTED, "files", "this registry has no data directory");
    if (!name || !mdl__name_ok(name))
        return md_fail(err, MD_E_INVALID_PARAM, "name", "must match [a-z0-9][a-z0-9_-]{0,63}");
    int rc = check_files(files, n, ver, err);
    if (rc != MD_OK)
        return rc;
    rc = mdl__begin(r, err);
    if (rc != MD_OK)
        return rc;
    rc = install_locked(r, name, ver, files, n, mode, canary_percent, err);
    mdl__end(r);
    return rc;
}
