//go:build windows

package cache

import (
	"io/fs"

	"golang.org/x/sys/windows"
)

// Windows has neither O_NOFOLLOW nor FIFOs in the file system; os.Root
// already refuses links that leave the directory.
const (
	openNoFollow = 0
	openNonBlock = 0
)

// currentSID is the calling user's security identifier, or "" when the
// process token cannot be read.
func currentSID() string {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return ""
	}
	return u.User.Sid.String()
}

// userDirName names the calling user's private subdirectory.
func userDirName() string { return "user-" + currentSID() }

// mkdirPrivate creates dir with a protected ACL that grants this user alone
// full control, whatever the parent directory would pass on.
func mkdirPrivate(dir string) error {
	sid := currentSID()
	if sid == "" {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: windows.ERROR_ACCESS_DENIED}
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;" + sid + ")")
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	sa := &windows.SecurityAttributes{Length: 12, SecurityDescriptor: sd}
	if err := windows.CreateDirectory(p, sa); err != nil {
		if err == windows.ERROR_ALREADY_EXISTS {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
		}
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	return nil
}

// ownedByUs reports whether the file at path belongs to the calling user.
func ownedByUs(_ fs.FileInfo, path string) bool {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return false
	}
	owner, _, err := sd.Owner()
	return err == nil && owner.String() == currentSID()
}

// privateDir says why the cache directory must not be trusted: a link, not
// a directory, or owned by another user.
func privateDir(info fs.FileInfo, path string) string {
	switch {
	case info.Mode()&fs.ModeSymlink != 0 || info.Mode()&fs.ModeIrregular != 0:
		return "is a link"
	case !info.IsDir():
		return "is not a directory"
	case !ownedByUs(info, path):
		return "is owned by another user"
	}
	return ""
}

// privateFile says why an entry file must not be trusted: owned by another
// user.
func privateFile(info fs.FileInfo, path string) string {
	if !ownedByUs(info, path) {
		return "entry owned by another user"
	}
	return ""
}
