// Package stratav1 holds Strata's protobuf API and its generated Go code.
//
// The .pb.go files are generated; change strata.proto and run `make proto`
// (CI checks that the committed code is fresh).
package stratav1

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative strata.proto
