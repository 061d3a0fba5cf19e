//go:build !linux

package evloop

import (
	"errors"
	"time"
)

// Supported reports whether this system has event loops: it has not (latch
// then serves each connection in a goroutine of its own).
const Supported = false

// Loop is not available on this system.
type Loop struct{}

var errUnsupported = errors.New("evloop: event loops need Linux's epoll")

func New(Tick) (*Loop, error)       { return nil, errUnsupported }
func (*Loop) Add(int, File) error   { return errUnsupported }
func (*Loop) Remove(int)            {}
func (*Loop) Post(func())           {}
func (*Loop) SetTick(time.Duration) {}
func (*Loop) Every() time.Duration  { return 0 }
func (*Loop) SetAfter(func())       {}
func (*Loop) Close()                {}
func (*Loop) Run()                  {}
