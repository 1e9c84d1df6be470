// Package procgroup starts a child process as the leader of a process group
// of its own and signals that whole group, so that stopping a child also
// stops whatever it started; and it tells which signal ended a process.
package procgroup
