//! deployer: a declarative deployer for a multi-node web app cluster.
