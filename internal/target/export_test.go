package target

// For the tests in package target_test, which drive groups with the real
// pickers of package balance (which imports this one).
const (
	AnomalyInterval = anomalyInterval
	MaxMitigation   = maxMitigation
	RampSteps       = rampSteps
)
