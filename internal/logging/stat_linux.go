package logging

import (
	"io/fs"
	"strconv"
	"syscall"
)

type devIno struct{ dev, ino string }

func statDevIno(fi fs.FileInfo) (devIno, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return devIno{}, false
	}
	return devIno{dev: strconv.FormatUint(st.Dev, 10), ino: strconv.FormatUint(st.Ino, 10)}, true
}
