package mock

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// controlPrefix roots the mock-only control API, which lets a test drive a
// mock running as a separate process:
//
//	GET    /_mock/requests   recorded API requests (JSON array)
//	DELETE /_mock/requests   forget them
//	GET    /_mock/reports    accepted reports (JSON array)
//	DELETE /_mock/reports    forget them
//	GET    /_mock/fault      the installed fault, or 204
//	POST   /_mock/fault      install {"mode","count","path","retryAfter","delay":"2s","size"}
//	DELETE /_mock/fault      clear it
//	POST   /_mock/list       replace the list (plain text or the API's JSON)
//	POST   /_mock/quota/reset  zero today's quota counters
const controlPrefix = "/_mock/"

// faultWire is Fault as the control API reads and writes it.
type faultWire struct {
	Mode       FaultMode `json:"mode"`
	Count      int       `json:"count,omitempty"`
	Path       string    `json:"path,omitempty"`
	RetryAfter string    `json:"retryAfter,omitempty"`
	Delay      string    `json:"delay,omitempty"`
	Size       int64     `json:"size,omitempty"`
}

func (s *Server) routeControl() {
	s.mux.HandleFunc("GET /_mock/requests", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(s.Requests()))
	})
	s.mux.HandleFunc("DELETE /_mock/requests", func(w http.ResponseWriter, r *http.Request) {
		s.ClearRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("GET /_mock/reports", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(s.Reports()))
	})
	s.mux.HandleFunc("DELETE /_mock/reports", func(w http.ResponseWriter, r *http.Request) {
		s.ClearReports()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("GET /_mock/fault", func(w http.ResponseWriter, r *http.Request) {
		f, ok := s.CurrentFault()
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, faultWire{Mode: f.Mode, Count: f.Count, Path: f.Path,
			RetryAfter: f.RetryAfter, Delay: f.Delay.String(), Size: f.Size})
	})
	s.mux.HandleFunc("POST /_mock/fault", func(w http.ResponseWriter, r *http.Request) {
		var fw faultWire
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fw); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid fault: %v", err))
			return
		}
		f := Fault{Mode: fw.Mode, Count: fw.Count, Path: fw.Path, RetryAfter: fw.RetryAfter, Size: fw.Size}
		if fw.Delay != "" {
			d, err := time.ParseDuration(fw.Delay)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid delay: %v", err))
				return
			}
			f.Delay = d
		}
		if err := s.SetFault(f); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("DELETE /_mock/fault", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFault()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST /_mock/list", func(w http.ResponseWriter, r *http.Request) {
		es, err := ParseList(io.LimitReader(r.Body, 512<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetEntries(es)
		writeJSON(w, http.StatusOK, map[string]int{"entries": len(es)})
	})
	s.mux.HandleFunc("POST /_mock/quota/reset", func(w http.ResponseWriter, r *http.Request) {
		s.ResetQuota()
		w.WriteHeader(http.StatusNoContent)
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
