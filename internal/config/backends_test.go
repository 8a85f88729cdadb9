package config

// Validate asks the chosen backend to check its hook names; link both, as
// cmd/sikkerguard does.
import (
	_ "github.com/sikkerapi/sikkerguard/internal/ipset"
	_ "github.com/sikkerapi/sikkerguard/internal/nft"
)
