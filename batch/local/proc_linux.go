package local

import "syscall"

// setParentDeathSignal has the kernel kill the worker if the server dies, so
// that a killed server leaves no worker behind.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
