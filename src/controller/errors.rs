use kafka_protocol::ResponseError;

/// Why the controller refused a change; each variant is exactly one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("{0}")]
    InvalidTopic(String),
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("This node is not the active controller.")]
    NotController,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    #[error("{0}")]
    BrokerIdNotRegistered(String),
    #[error("{0}")]
    InconsistentClusterId(String),
    #[error("{0}")]
    DuplicateBrokerRegistration(String),
    #[error("{0}")]
    InvalidRegistration(String),
    #[error("{0}")]
    UnsupportedVersion(String),
    #[error("{0}")]
    StaleBrokerEpoch(String),
    #[error("Leader election not needed for topic partition: {0}")]
    ElectionNotNeeded(String),
    #[error("The preferred leader was not available: {0}")]
    PreferredLeaderNotAvailable(String),
    #[error("Eligible topic partition leaders are not available: {0}")]
    EligibleLeadersNotAvailable(String),
    #[error("The server experienced an unexpected error: {0}")]
    Unknown(String),
}

impl ControllerError {
    pub fn error(&self) -> ResponseError {
        match self {
            ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            ControllerError::InvalidConfig(_) => ResponseError::InvalidConfig,
            ControllerError::NotController => ResponseError::NotController,
            ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
            ControllerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            ControllerError::TopicDeletionDisabled => ResponseError::TopicDeletionDisabled,
            ControllerError::UnknownTopicId => ResponseError::UnknownTopicId,
            ControllerError::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
            ControllerError::InconsistentClusterId(_) => ResponseError::InconsistentClusterId,
            ControllerError::DuplicateBrokerRegistration(_) => {
                ResponseError::DuplicateBrokerRegistration
            }
            ControllerError::InvalidRegistration(_) => ResponseError::InvalidRegistration,
            ControllerError::UnsupportedVersion(_) => ResponseError::UnsupportedVersion,
            ControllerError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
            ControllerError::ElectionNotNeeded(_) => ResponseError::ElectionNotNeeded,
            ControllerError::PreferredLeaderNotAvailable(_) => {
                ResponseError::PreferredLeaderNotAvailable
            }
            ControllerError::EligibleLeadersNotAvailable(_) => {
                ResponseError::EligibleLeadersNotAvailable
            }
            ControllerError::Unknown(_) => ResponseError::UnknownServerError,
        }
    }

    pub fn code(&self) -> i16 {
        self.error().code()
    }

    /// The error an answer from another node's controller carries.
    pub fn from_code(code: i16, message: &str) -> ControllerError {
        let m = message.to_string();
        match ResponseError::try_from_code(code) {
            Some(ResponseError::InvalidTopicException) => ControllerError::InvalidTopic(m),
            Some(ResponseError::TopicAlreadyExists) => ControllerError::TopicAlreadyExists(m),
            Some(ResponseError::InvalidPartitions) => ControllerError::InvalidPartitions(m),
            Some(ResponseError::InvalidReplicationFactor) => {
                ControllerError::InvalidReplicationFactor(m)
            }
            Some(ResponseError::InvalidReplicaAssignment) => {
                ControllerError::InvalidReplicaAssignment(m)
            }
            Some(ResponseError::InvalidConfig) => ControllerError::InvalidConfig(m),
            Some(ResponseError::NotController) => ControllerError::NotController,
            Some(ResponseError::InvalidRequest) => ControllerError::InvalidRequest(m),
            Some(ResponseError::UnknownTopicOrPartition) => {
                ControllerError::UnknownTopicOrPartition
            }
            Some(ResponseError::TopicDeletionDisabled) => ControllerError::TopicDeletionDisabled,
            Some(ResponseError::UnknownTopicId) => ControllerError::UnknownTopicId,
            Some(ResponseError::BrokerIdNotRegistered) => ControllerError::BrokerIdNotRegistered(m),
            _ => ControllerError::Unknown(format!("error code {code}: {m}")),
        }
    }
}
