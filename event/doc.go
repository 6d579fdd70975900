// Package event holds what the data path's stages share about events: the
// Window (one org's time range, the unit of work and of idempotence), the
// one record Schema, Quarantined records, and the sets of event ids and
// content digests with which a walk and a sink agree on what is already
// archived. source produces windows of records in Schema, sinks store
// them, checkpoint records how far each org got; they import event and
// not each other, and runner ties them together.
package event
