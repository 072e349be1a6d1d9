package mongowire

import (
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// failPoints holds MongoDB's failCommand fail point, the one fail point
// mongowire implements, configured by configureFailPoint as documented in
// MongoDB's "Server Fail Points" (mode alwaysOn, off, {times: n} or
// {skip: n}; data failCommands, errorCode, errorLabels, closeConnection,
// blockConnection and blockTimeMS, writeConcernError, appName).
type failPoints struct {
	mu      sync.Mutex
	on      bool
	times   int64 // remaining activations; -1 for alwaysOn
	skip    int64
	entered int64
	cfg     action
	cmds    map[string]bool
	appName string
}

// action is what an activated fail point does to one command.
type action struct {
	closeConnection   bool
	block             time.Duration
	errorCode         int32
	labels            []string
	labelsSet         bool
	writeConcernError bson.Raw
}

// match reports what the fail point does to command name on a connection
// whose client called itself app, or nil.
func (f *failPoints) match(name string, app any) *action {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on || !f.cmds[name] {
		return nil
	}
	if f.appName != "" {
		if a, _ := app.(string); a != f.appName {
			return nil
		}
	}
	if f.skip > 0 {
		f.skip--
		return nil
	}
	if f.times == 0 {
		f.on = false
		return nil
	}
	if f.times > 0 {
		f.times--
		if f.times == 0 {
			f.on = false
		}
	}
	f.entered++
	a := f.cfg
	return &a
}

// configureFailPoint is MongoDB's configureFailPoint command, for the
// failCommand fail point only: it sets the fail point and answers with the
// number of times the previous one was entered.
func (s *Server) configureFailPoint(r *request) (bson.D, error) {
	if r.db != "admin" {
		return nil, cmdErr(13, "Unauthorized", "configureFailPoint may only be run against the admin database.")
	}
	name := r.str("configureFailPoint")
	if name != "failCommand" {
		return nil, unsupported("the fail point %q (only failCommand)", name)
	}
	f := &s.fp
	mode, _ := r.val("mode")
	on, times, skip, err := failPointMode(mode)
	if err != nil {
		return nil, err
	}
	cfg, cmds, app := action{}, map[string]bool{}, ""
	if data, ok := r.doc("data"); ok {
		if cfg, cmds, app, err = failCommandData(data); err != nil {
			return nil, err
		}
	}
	if cfg.block < 0 {
		return nil, badValue("blockConnection needs blockTimeMS")
	}
	if on && len(cmds) == 0 {
		return nil, badValue("failCommand needs data.failCommands")
	}
	f.mu.Lock()
	count := f.entered
	f.on, f.times, f.skip, f.cfg, f.cmds, f.appName, f.entered = on, times, skip, cfg, cmds, app, 0
	f.mu.Unlock()
	return bson.D{{Key: "count", Value: int32(count)}}, nil
}

// failPointMode reads a fail point's mode: "alwaysOn", "off", {times: n}
// or {skip: n}. times is -1 for no limit.
func failPointMode(mode bson.RawValue) (on bool, times, skip int64, err error) {
	on = true
	switch mode.Type {
	case bson.TypeString:
		switch mode.StringValue() {
		case "alwaysOn":
			times = -1
		case "off":
			on = false
		default:
			return false, 0, 0, badValue("unknown fail point mode %q", mode.StringValue())
		}
	case bson.TypeEmbeddedDocument:
		m := mode.Document()
		els := mustElements(m)
		if len(els) != 1 {
			return false, 0, 0, badValue("mode must have exactly one of times, skip, activationProbability")
		}
		n, ok := number(els[0].Value())
		if !ok || n < 0 {
			return false, 0, 0, badValue("mode.%s must be a non-negative number", els[0].Key())
		}
		switch els[0].Key() {
		case "times":
			times = n
			on = n > 0
		case "skip":
			skip, times = n, -1
		default:
			return false, 0, 0, unsupported("the fail point mode %q", els[0].Key())
		}
	default:
		return false, 0, 0, badValue("mode must be a string or a document")
	}
	return on, times, skip, nil
}

// failCommandData reads the failCommand fail point's data document: the
// commands to fail, how, and for which appName.
func failCommandData(data bson.Raw) (cfg action, cmds map[string]bool, app string, err error) {
	cmds = map[string]bool{}
	for _, el := range mustElements(data) {
		v := el.Value()
		switch el.Key() {
		case "failCommands":
			arr, ok := v.ArrayOK()
			if !ok {
				return cfg, nil, "", badValue("data.failCommands must be an array of command names")
			}
			vals, _ := arr.Values()
			for _, c := range vals {
				n, ok := c.StringValueOK()
				if !ok {
					return cfg, nil, "", badValue("data.failCommands must be an array of command names")
				}
				cmds[n] = true
			}
		case "closeConnection":
			cfg.closeConnection, _ = v.BooleanOK()
		case "errorCode":
			n, ok := number(v)
			if !ok {
				return cfg, nil, "", badValue("data.errorCode must be a number")
			}
			cfg.errorCode = int32(n)
		case "errorLabels":
			arr, ok := v.ArrayOK()
			if !ok {
				return cfg, nil, "", badValue("data.errorLabels must be an array")
			}
			vals, _ := arr.Values()
			cfg.labels, cfg.labelsSet = []string{}, true
			for _, l := range vals {
				if s, ok := l.StringValueOK(); ok {
					cfg.labels = append(cfg.labels, s)
				}
			}
		case "blockConnection":
			if b, _ := v.BooleanOK(); b && cfg.block == 0 {
				cfg.block = -1 // needs blockTimeMS
			}
		case "blockTimeMS":
			n, _ := number(v)
			if n > 0 {
				cfg.block = time.Duration(n) * time.Millisecond
			}
		case "writeConcernError":
			d, ok := v.DocumentOK()
			if !ok {
				return cfg, nil, "", badValue("data.writeConcernError must be a document")
			}
			cfg.writeConcernError = d
		case "appName":
			app, _ = v.StringValueOK()
		case "failInternalCommands":
		default:
			return cfg, nil, "", unsupported("the failCommand option data.%s", el.Key())
		}
	}
	if data.Lookup("blockConnection").Type == bson.TypeBoolean && !data.Lookup("blockConnection").Boolean() {
		cfg.block = 0
	}
	return cfg, cmds, app, nil
}
