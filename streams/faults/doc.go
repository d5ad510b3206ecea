// Package faults is the harness of the fault-injection suite (`make faults`): the scenarios in this
// directory's tests run the real `hotelbus gateway` and `hotelbus dispatch` binaries as child
// processes against Apache Kafka and redis-server, publish simulated hotel traffic through the
// gateway, break things (kill -9 of brokers, dispatchers and Redis: one server, the primary of a
// Sentinel set, a Cluster master; a target answering 5xx or
// timing out, a stalled dispatcher), and check with streamstest.Checker what the dispatcher's
// target received: every acknowledged event exactly once, in order per key.
//
// The suite is opt-in: every test skips unless HOTELBUS_FAULTS=1. `make faults` (.ci/rig/faults.sh)
// brings up the rig (one broker and one redis-server, HOTELBUS_TEST_BROKERS and
// HOTELBUS_TEST_REDIS), builds the binary once and sets:
//
//	HOTELBUS_FAULTS=1          run the suite
//	HOTELBUS_FAULTS_BIN        the hotelbus binary (default: built into each test's temp dir)
//	HOTELBUS_FAULTS_STATE      a directory for the private brokers' state (default: a temp dir)
//	HOTELBUS_FAULTS_REPORT     a file each scenario appends its table to (default: none)
//
// Brokers and Redis servers the scenarios kill are private ones (.ci/rig/broker.sh,
// .ci/rig/cluster3.sh, .ci/rig/redis-ha.sh), never the rig's shared ones.
package faults
