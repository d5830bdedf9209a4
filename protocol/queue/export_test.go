package queue

// PublicAddr exposes publicAddr to the tests of package queue_test.
var PublicAddr = publicAddr
