//go:build race

package transport

// The race detector allows 8128 live goroutines; 900 rafts take more.
const raceEnabled = true
