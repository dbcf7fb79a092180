package broker_test

import "github.com/hashicorp/raft"

func raftAddr(s string) raft.ServerAddress { return raft.ServerAddress(s) }
