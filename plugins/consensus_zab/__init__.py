"""ZAB consensus: ZooKeeper 3.8's election and learner protocols, byte for byte."""
