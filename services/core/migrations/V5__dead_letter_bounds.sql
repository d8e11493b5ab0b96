-- Dead letters are bounded and unique (docs/contracts.md, "Tables").
--
-- Bounded: the processor keeps at most 64 KiB of a bad record's key and payload; these columns
-- hold each one's full length and the SHA-256 of the whole, so a cut value can still be matched
-- against the record on the topic (NULL when the record had no key, or no payload).
ALTER TABLE dead_letters
    ADD COLUMN key_length     integer,
    ADD COLUMN key_sha256     bytea,
    ADD COLUMN payload_length integer,
    ADD COLUMN payload_sha256 bytea;

-- Rows written before this migration hold the whole key and payload.
UPDATE dead_letters
   SET key_length = length(key), key_sha256 = sha256(key),
       payload_length = length(payload), payload_sha256 = sha256(payload);

-- Unique: one row per record, however often it is read (a rewind, a second consumer group).
-- Replays stored before this migration are removed, keeping the first row of each record.
DELETE FROM dead_letters d
 USING dead_letters first
 WHERE d.topic = first.topic
   AND d.kafka_partition = first.kafka_partition
   AND d.kafka_offset = first.kafka_offset
   AND d.id > first.id;

CREATE UNIQUE INDEX dead_letters_record ON dead_letters (topic, kafka_partition, kafka_offset);
