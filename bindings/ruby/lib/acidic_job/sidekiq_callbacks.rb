# frozen_string_literal: true

require "active_support/callbacks"

# ActiveJob's callback interface (before/after/around_perform) for Sidekiq workers,
# following ActiveJob's approach, as in acidic_job 0.7.0.
module SidekiqCallbacks
  extend ActiveSupport::Concern

  def self.prepended(base)
    base.include(ActiveSupport::Callbacks)

    # Do not overwrite callbacks already defined when this module comes in twice.
    base.define_callbacks :perform unless base.respond_to?(:_perform_callbacks) && base._perform_callbacks.present?

    class << base
      prepend ClassMethods
    end
  end

  def perform(*args)
    if respond_to?(:run_callbacks)
      run_callbacks :perform do
        super(*args)
      end
    else
      super(*args)
    end
  end

  module ClassMethods
    def around_perform(*filters, &blk)
      set_callback(:perform, :around, *filters, &blk)
    end

    def before_perform(*filters, &blk)
      set_callback(:perform, :before, *filters, &blk)
    end

    def after_perform(*filters, &blk)
      set_callback(:perform, :after, *filters, &blk)
    end
  end
end
