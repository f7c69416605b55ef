"""The one training / evaluation engine every method plugs into."""
