# frozen_string_literal: true

module AcidicJob
  # A run's row read from acidic_job's own connection (database_url configured), for
  # applications without ActiveRecord: the same readers as AcidicJob::Key. Its SELECT is
  # the one statement on acidic_job's tables left in this library, until the core's
  # operator functions (issue 11) read runs.
  OwnedKey = Struct.new(:id, :idempotency_key, :job_name, :job_args, :last_run_at, :locked_at,
                        :recovery_point, :error_object, :attr_accessors, :workflow, :created_at,
                        :updated_at, keyword_init: true) do
    def self.find_by(idempotency_key:)
      row = Stores.owned.exec(
        "SELECT id, idempotency_key, job_name, job_args, last_run_at, locked_at, recovery_point," \
        " error_object, attr_accessors, workflow, created_at, updated_at FROM acidic_job_keys" \
        " WHERE idempotency_key = ? ORDER BY id LIMIT 1", [idempotency_key.to_s]
      ).first
      return nil unless row

      new(id: row[0], idempotency_key: row[1], job_name: row[2], job_args: YAMLCoder.load(row[3]),
          last_run_at: row[4], locked_at: row[5], recovery_point: row[6],
          error_object: YAMLCoder.load(row[7]),
          attr_accessors: Documents.load_attributes(row[8]).with_indifferent_access,
          workflow: WorkflowCoder.load(row[9]), created_at: row[10], updated_at: row[11])
    end

    include KeyStatus

    def reload
      self.class.find_by(idempotency_key: idempotency_key)
    end
  end
end
