//go:build !linux

package safety

import "errors"

// Netlink reads routes and addresses from the kernel; it needs Linux.
type Netlink struct{}

var errNoNetlink = errors.New("route discovery needs Linux rtnetlink")

// Routes fails: there is no rtnetlink on this system.
func (Netlink) Routes() ([]Route, error) { return nil, errNoNetlink }

// Addrs fails: there is no rtnetlink on this system.
func (Netlink) Addrs() ([]IfAddr, error) { return nil, errNoNetlink }
