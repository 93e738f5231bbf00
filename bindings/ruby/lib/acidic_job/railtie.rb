# frozen_string_literal: true

module AcidicJob
  # Rails: the `acidic_job:drain` rake task (the generator is found by name).
  class Railtie < ::Rails::Railtie
    # Sidekiq may be required after acidic_job (Gemfile order).
    config.after_initialize do
      AcidicJob::Integrations.install_sidekiq if defined?(::Sidekiq)
    end

    rake_tasks do
      load File.expand_path("../tasks/acidic_job.rake", __dir__)
    end
  end
end
