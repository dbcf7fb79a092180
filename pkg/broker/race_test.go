//go:build race

package broker_test

// raceEnabled: timing bounds allow for the race detector's slowdown.
const raceEnabled = true
