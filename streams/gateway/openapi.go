package gateway

import _ "embed"

// openAPI is the OpenAPI 3 document served at /openapi.json; a test checks it against the server.
//
//go:embed openapi.json
var openAPI []byte
