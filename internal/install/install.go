// Package install copies the brokercred binary into a directory, atomically,
// so that an initContainer built FROM scratch with nothing but the binary can
// hand it to the Argo CD containers through a shared emptyDir.
package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// Mode is the permission of the installed binary.
const Mode fs.FileMode = 0o755

// FileName is the name the binary gets in the target directory:
// brokercred, or brokercred.exe on Windows.
func FileName() string {
	if runtime.GOOS == "windows" {
		return "brokercred.exe"
	}
	return "brokercred"
}

// Self installs the running executable into dir (see File) and returns the
// installed path.
func Self(dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the running executable: %w", err)
	}
	return File(exe, dir)
}

// File copies the executable src into dir under FileName, with mode 0755, and
// returns the installed path. The copy goes to a temporary file in dir that is
// synced and then renamed over the target, so a reader never sees a partial
// binary and a second run simply replaces the first. On failure nothing is
// left behind in dir, and the error says what to do about it in one line.
func File(src, dir string) (string, error) {
	if err := checkDir(dir); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open %s to install it: %w", src, err)
	}
	defer in.Close()
	dst := filepath.Join(dir, FileName())
	tmp, err := os.CreateTemp(dir, "."+FileName()+"-*.tmp")
	if err != nil {
		return "", writeError(dir, err)
	}
	if err := fill(tmp, in); err != nil {
		_ = os.Remove(tmp.Name())
		return "", writeError(dir, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		_ = os.Remove(tmp.Name())
		return "", writeError(dir, err)
	}
	syncDir(dir)
	return dst, nil
}

// checkDir refuses a dir that does not exist or is not a directory.
func checkDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("install dir %s does not exist; create it, or mount the shared emptyDir there (volumeMounts of the initContainer)", dir)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("install dir %s is under a file, not a directory; pass a directory, for example the emptyDir mount /custom-tools", dir)
	case err != nil:
		return fmt.Errorf("install dir %s: %v; pass a directory this user can write", dir, unwrapPath(err))
	case !info.IsDir():
		return fmt.Errorf("install dir %s is a file, not a directory; pass a directory, for example the emptyDir mount /custom-tools", dir)
	}
	return nil
}

// fill copies in to tmp, makes it executable, syncs and closes it.
func fill(tmp *os.File, in io.Reader) error {
	_, err := io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(Mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeError words a failure to write into dir as a cause and a remedy.
func writeError(dir string, err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("install dir %s is on a read-only file system; mount a writable volume there (an emptyDir)", dir)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("install dir %s is not writable by this user; run the initContainer as a user that can write it, or mount an emptyDir there", dir)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("install dir %s is full; give the volume more room (emptyDir sizeLimit)", dir)
	}
	return fmt.Errorf("install into %s: %v; check the directory is a writable volume", dir, unwrapPath(err))
}

// unwrapPath drops the *fs.PathError or *os.LinkError wrapper, whose paths
// the message names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// syncDir makes the rename durable where the platform allows; a failure only
// weakens durability, so it is ignored.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
