# frozen_string_literal: true

require "active_record"
require "global_id"

module AcidicJob
  # A job staged in a transaction (table staged_acidic_jobs, as in 0.7.0). Jobs staged
  # inside a step are written by the core; a row created through this model outside a
  # step is pushed after its transaction commits, as in 0.7.0. Either way the row is
  # deleted once the job has performed.
  class Staged < ActiveRecord::Base
    self.table_name = "staged_acidic_jobs"

    include GlobalID::Identification

    serialize :job_args, AcidicJob::YAMLCoder

    validates :adapter, presence: true
    validates :job_name, presence: true
    validates :job_args, presence: true

    after_create_commit :enqueue_job

    # The GlobalID string of the staged row `id`, without loading it (one per pushed job:
    # URI::GID.build is made once per app name).
    def self.gid_for(id)
      app = GlobalID.app || AcidicJob::DEFAULT_GLOBALID_APP
      prefix = (@gid_prefixes ||= {})[app] ||=
        URI::GID.build(app: app, model_name: name, model_id: "0").to_s.delete_suffix("0").freeze
      "#{prefix}#{Integer(id)}"
    end

    def to_global_id(_options = {})
      GlobalID.new(self.class.gid_for(id))
    end
    alias to_gid to_global_id

    private

    def enqueue_job
      Outbox.push(id, adapter, job_name, job_args)
    end
  end
end
