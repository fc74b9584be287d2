// kstatus prints the verdict of sigs.k8s.io/cli-utils/pkg/kstatus/status (the library behind
// `flux ... --wait`, `kpt live status` and `kubectl wait`-style tooling) for each JSON object read
// from stdin, one JSON line each: {"status": "Current|InProgress|Failed|...", "message": "..."}.
// Tests run it on live objects so the operator's status is judged by the real code, not a copy.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	out := json.NewEncoder(os.Stdout)
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: reading object:", err)
			os.Exit(2)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil { // integers stay int64, as from the API server
			fmt.Fprintln(os.Stderr, "kstatus: decoding object:", err)
			os.Exit(2)
		}
		res, err := status.Compute(obj)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: computing status:", err)
			os.Exit(1)
		}
		if err := out.Encode(map[string]string{"status": string(res.Status), "message": res.Message}); err != nil {
			os.Exit(2)
		}
	}
}
