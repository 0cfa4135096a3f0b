"""Mixed ensembles: our ZAB plugin beside Apache ZooKeeper 3.8 members."""
