package wire

import "github.com/prometheus/client_golang/prometheus"

// Results of a login, as counted.
const (
	LoginOK        = "ok"
	LoginFailed    = "failed"
	LoginThrottled = "throttled" // failed, and slowed down by the credential check
)

// Metrics are one front end's counters, named mailgate_<protocol>_….
type Metrics struct {
	open        prometheus.Gauge
	connections prometheus.Counter
	refused     *prometheus.CounterVec
	logins      *prometheus.CounterVec
	commands    *prometheus.CounterVec
	messages    *prometheus.CounterVec
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
}

// NewMetrics makes the counters of protocol and registers them with reg (nil:
// kept unregistered, for tests).
func NewMetrics(reg prometheus.Registerer, protocol string) *Metrics {
	name := func(s string) string { return "mailgate_" + protocol + "_" + s }
	m := &Metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: name("connections_open"),
			Help: "Client connections open now."}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{Name: name("connections_total"),
			Help: "Client connections accepted."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("connections_refused_total"),
			Help: "Client connections refused, by reason (max_connections, max_connections_per_ip, shutdown)."}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("logins_total"),
			Help: "Login attempts, by result (ok, failed, throttled)."}, []string{"result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("commands_total"),
			Help: "Commands answered, by command and result class."}, []string{"command", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("messages_total"),
			Help: "Messages received from clients, by result (accepted, rejected)."}, []string{"result"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: name("received_bytes_total"),
			Help: "Bytes read from clients, as on the wire."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: name("sent_bytes_total"),
			Help: "Bytes written to clients, as on the wire."}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.connections, m.refused, m.logins, m.commands, m.messages, m.bytesIn, m.bytesOut)
	}
	return m
}

// Login counts a login attempt.
func (m *Metrics) Login(result string) { m.logins.WithLabelValues(result).Inc() }

// Command counts an answered command. command is an upper-case verb from a
// fixed set (callers map anything else to "OTHER"); result is the reply's
// class ("2xx", "ok", "no", "err"…).
func (m *Metrics) Command(command, result string) {
	m.commands.WithLabelValues(command, result).Inc()
}

// Message counts a message received from a client.
func (m *Metrics) Message(accepted bool) {
	r := "rejected"
	if accepted {
		r = "accepted"
	}
	m.messages.WithLabelValues(r).Inc()
}
