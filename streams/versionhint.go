package streams

import (
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// unknownFieldMessage starts the message of a data field the schema does not have (conform, in
// avrocodec.go).
const unknownFieldMessage = "unknown field (not in schema "

// hintVersion completes the unknown-field errors under data: the schema they were checked against
// is version, the one the event's "version" selected (declared; "" selects the newest), and when
// the newest version of the event type has such a field (a top-level one), that version is named,
// since the usual cause is an event written for a later version than the one it declares.
func hintVersion(errs *fieldErrs, eventType, declared, version string, lookup DataSchema) {
	var newest *avro.RecordSchema
	newestVersion := ""
	for i, fe := range errs.list {
		if !strings.HasPrefix(fe.Path, "data.") || !strings.HasPrefix(fe.Message, unknownFieldMessage) {
			continue
		}
		if newest == nil && newestVersion == "" {
			newest, newestVersion, _ = lookup(eventType, "")
			if newest == nil {
				newestVersion = "-"
			}
		}
		hint := fmt.Sprintf(" version %s, which the event's \"version\" selects", version)
		if declared == "" {
			hint = fmt.Sprintf(" version %s, the newest: the event gives no \"version\"", version)
		}
		name := strings.TrimPrefix(fe.Path, "data.")
		if newest != nil && newestVersion != version && !strings.ContainsAny(name, ".[") && hasField(newest, name) {
			hint += fmt.Sprintf("; version %s has it: send \"version\": %q, or no version for the newest", newestVersion, newestVersion)
		}
		errs.list[i].Message = strings.TrimSuffix(fe.Message, ")") + hint + ")"
	}
}
